"""The seed's run_tasks.py: send jobs, keep their receipts (ids) for show_results.py."""

from __future__ import annotations

import json

from tasks import add, send_welcome_email

print("Let's send some tasks!")
sent = {
    "add(5, 7)": add.delay(5, 7).id,
    "send_welcome_email(123)": send_welcome_email.delay(123).id,
    "add(10, 20), countdown=1": add.apply_async(args=(10, 20), countdown=1).id,
}
for call, job_id in sent.items():
    print(f"Sent {call}. Task ID: {job_id}")
with open("sent.json", "w") as file:
    json.dump(sent, file)
print("Tasks are in the queue table; a worker picks them up next.")
