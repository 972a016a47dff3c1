"""A read-mostly model of sqlqueue_jobs, for the admin. The table itself belongs to sqlqueue's
alembic migrations (``managed = False``); the worker never goes through this model."""

from __future__ import annotations

from django.db import models

from sqlqueue.jobs import JobStatus


class Job(models.Model):
    id = models.CharField(primary_key=True, max_length=255)
    task_name = models.CharField(max_length=200)
    queue = models.CharField(max_length=200)
    priority = models.IntegerField()
    args = models.JSONField()
    kwargs = models.JSONField()
    status = models.CharField(max_length=16, choices=[(s.value, s.value) for s in JobStatus])
    attempts = models.IntegerField()
    retries = models.IntegerField()
    expired_leases = models.IntegerField()
    scheduled_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    lease_expires_at = models.DateTimeField(null=True)
    worker_id = models.CharField(max_length=255, null=True)
    result = models.JSONField(null=True)
    error_type = models.CharField(max_length=255, null=True)
    error_message = models.TextField(null=True)
    traceback = models.TextField(null=True)
    progress = models.JSONField(null=True)
    workflow_id = models.CharField(max_length=255, null=True)
    parent_id = models.CharField(max_length=255, null=True)
    group_id = models.CharField(max_length=255, null=True)
    group_index = models.IntegerField(null=True)
    group_members = models.JSONField(null=True)
    waiting_for = models.IntegerField(null=True)
    prerequisites = models.JSONField(null=True)
    feed = models.CharField(max_length=16, null=True)
    dependents = models.JSONField(null=True)
    errbacks = models.JSONField(null=True)
    unique_key = models.CharField(max_length=255, null=True)
    limit_key = models.CharField(max_length=255, null=True)
    concurrency_limit = models.IntegerField(null=True)
    rate_interval = models.FloatField(null=True)

    class Meta:
        managed = False
        db_table = "sqlqueue_jobs"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.task_name} {self.id} {self.status}"
