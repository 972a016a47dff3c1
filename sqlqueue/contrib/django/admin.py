"""Jobs in the Django admin: filter, search by id, retry failed jobs, revoke queued ones."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from sqlqueue.contrib.django import app
from sqlqueue.contrib.django.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "task_name", "queue", "status", "priority", "created_at", "finished_at"]
    list_filter = ["status", "queue", "task_name"]
    search_fields = ["=id"]
    actions = ["retry_jobs", "revoke_jobs"]
    readonly_fields = [field.name for field in Job._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are sent by code, with task.delay()

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False

    @admin.action(description="Retry the selected failed or revoked jobs")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        ids = [str(job_id) for job_id in queryset.values_list("id", flat=True)]
        count = app.store.requeue_jobs(job_ids=ids)
        self.message_user(request, f"{count} job(s) queued again.", messages.SUCCESS)

    @admin.action(description="Revoke the selected jobs that have not started")
    def revoke_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        count = app.store.revoke_jobs(
            [str(job_id) for job_id in queryset.values_list("id", flat=True)]
        )
        self.message_user(request, f"{count} job(s) revoked.", messages.SUCCESS)
