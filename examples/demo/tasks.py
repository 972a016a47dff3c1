"""The seed's tasks, unchanged but for the import and shorter sleeps."""

from __future__ import annotations

import time

from celery_app import app


@app.task
def add(x: int, y: int) -> int:
    """A simple task that adds two numbers."""
    print(f"Task 'add' starting with ({x}, {y})")
    time.sleep(1)  # simulate some work taking time
    result = x + y
    print(f"Task 'add' finished with result: {result}")
    return result


@app.task
def send_welcome_email(user_id: int) -> str:
    """A task simulating sending a welcome email."""
    print(f"Task 'send_welcome_email' starting for user {user_id}")
    time.sleep(1)  # simulate email sending
    print(f"Welcome email supposedly sent to user {user_id}")
    return f"Email sent to {user_id}"
