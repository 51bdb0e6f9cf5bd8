from django.contrib import admin

from .models import OutboxMessage, TaskReceipt


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    list_display = ["created_at", "topic", "status", "attempts", "next_attempt_at", "dedup_key"]
    list_filter = ["status", "topic"]
    search_fields = ["dedup_key", "request_id"]
    readonly_fields = [f.name for f in OutboxMessage._meta.fields]


@admin.register(TaskReceipt)
class TaskReceiptAdmin(admin.ModelAdmin):
    list_display = ["dedup_key", "task_name", "processed_at"]
