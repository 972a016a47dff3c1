"""Celery settings, unchanged from the Celery project."""

task_routes = {"proj.emails.*": {"queue": "emails"}}
task_default_queue = "default"
task_time_limit = 60
task_soft_time_limit = 50
result_expires = 3600
worker_concurrency = 4
timezone = "Europe/Paris"
