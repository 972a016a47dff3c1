"""Celery's setting names: which ones sqlqueue reads, which it accepts and ignores (and why),
and how Celery's old upper-case names (``CELERY_ALWAYS_EAGER``) map onto the new ones.

The names are Celery 5's (``celery/app/defaults.py``); sqlqueue's own ``Settings`` fields are
the names it acts on. Everything here is data and pure functions, so that ``conf.update`` and
``config_from_object`` read a mapping the same way.
"""

from __future__ import annotations

CELERY_SETTINGS = frozenset(
    """
    accept_content arangodb_backend_settings azureblockblob_base_path
    azureblockblob_connection_timeout azureblockblob_container_name
    azureblockblob_read_timeout azureblockblob_retry_increment_base
    azureblockblob_retry_initial_backoff_sec azureblockblob_retry_max_attempts
    beat_cron_starting_deadline beat_max_loop_interval beat_schedule
    beat_schedule_filename beat_scheduler beat_sync_every broker_channel_error_retry
    broker_connection_max_retries broker_connection_retry
    broker_connection_retry_on_startup broker_connection_timeout broker_failover_strategy
    broker_heartbeat broker_heartbeat_checkrate broker_host broker_login_method
    broker_native_delayed_delivery_queue_type broker_password broker_pool_acquire_timeout
    broker_pool_limit broker_port broker_read_url broker_transport
    broker_transport_options broker_url broker_use_ssl broker_user broker_vhost
    broker_write_url cache_backend cache_backend_options cassandra_auth_kwargs
    cassandra_auth_provider cassandra_bundle_path cassandra_entry_ttl cassandra_keyspace
    cassandra_options cassandra_port cassandra_read_consistency cassandra_servers
    cassandra_table cassandra_write_consistency control_exchange control_queue_durable
    control_queue_exclusive control_queue_expires control_queue_ttl
    cosmosdbsql_collection_name cosmosdbsql_consistency_level cosmosdbsql_database_name
    cosmosdbsql_max_retry_attempts cosmosdbsql_max_retry_wait_time
    couchbase_backend_settings database_create_tables_at_setup database_engine_callback
    database_engine_options database_short_lived_sessions database_table_names
    database_table_schemas database_url elasticsearch_max_retries
    elasticsearch_retry_on_timeout elasticsearch_save_meta_as_text elasticsearch_timeout
    enable_utc event_exchange event_queue_durable event_queue_exclusive
    event_queue_expires event_queue_prefix event_queue_ttl event_serializer gcs_base_path
    gcs_bucket gcs_project gcs_ttl imports include mongodb_backend_settings
    redis_backend_use_ssl redis_db redis_host redis_max_connections redis_password
    redis_port redis_retry_on_timeout redis_socket_connect_timeout redis_socket_keepalive
    redis_socket_timeout redis_username result_accept_content result_backend
    result_backend_always_retry result_backend_base_sleep_between_retries_ms
    result_backend_max_retries result_backend_max_sleep_between_retries_ms
    result_backend_transport_options result_cache_max result_chord_join_timeout
    result_chord_retry_interval result_compression result_exchange result_exchange_type
    result_expires result_extended result_persistent result_serializer s3_access_key_id
    s3_base_path s3_bucket s3_endpoint_url s3_region s3_secret_access_key
    security_cert_store security_certificate security_digest security_key
    security_key_password task_acks_late task_acks_on_failure
    task_acks_on_failure_or_timeout task_acks_on_timeout
    task_allow_error_cb_on_chord_header task_always_eager task_annotations
    task_compression task_create_missing_queue_exchange_type
    task_create_missing_queue_type task_create_missing_queues task_default_delivery_mode
    task_default_exchange task_default_exchange_type task_default_priority
    task_default_queue task_default_queue_type task_default_rate_limit
    task_default_routing_key task_eager_propagates task_ignore_result
    task_inherit_parent_priority task_protocol task_publish_retry
    task_publish_retry_policy task_queue_max_priority task_queues
    task_reject_on_worker_lost task_remote_tracebacks task_routes task_send_sent_event
    task_serializer task_soft_time_limit task_store_eager_result
    task_store_errors_even_if_ignored task_time_limit task_track_started timezone
    worker_agent worker_autoscaler worker_cancel_long_running_tasks_on_connection_loss
    worker_concurrency worker_consumer worker_deduplicate_successful_tasks
    worker_detect_quorum_queues worker_direct worker_disable_prefetch
    worker_disable_rate_limits worker_enable_prefetch_count_reduction
    worker_enable_remote_control worker_enable_soft_shutdown_on_idle worker_eta_task_limit
    worker_hijack_root_logger worker_log_color worker_log_format worker_lost_wait
    worker_max_memory_per_child worker_max_tasks_per_child worker_pool
    worker_pool_putlocks worker_pool_restarts worker_prefetch_multiplier
    worker_proc_alive_timeout worker_redirect_stdouts worker_redirect_stdouts_level
    worker_send_task_events worker_soft_shutdown_timeout worker_state_db
    worker_task_log_format worker_timer worker_timer_precision
    """.split()
)
"""Every setting Celery 5 documents, by its lower-case name."""

OLD_PREFIXES = ("CELERYBEAT_", "CELERYD_", "CELERY_", "BROKER_")
"""Upper-case keys with these prefixes are Celery's old names (Celery 3), read as the new
ones; every other upper-case key is a web framework's own setting and is left alone."""

IRREGULAR_OLD_NAMES = {
    "CELERY_EAGER_PROPAGATES_EXCEPTIONS": "task_eager_propagates",
    "CELERY_MAX_CACHED_RESULTS": "result_cache_max",
    "CELERY_MESSAGE_COMPRESSION": "task_compression",
    "CELERY_RESULT_DBURI": "database_url",
    "CELERY_RESULT_DB_SHORT_LIVED_SESSIONS": "database_short_lived_sessions",
    "CELERY_RESULT_DB_TABLENAMES": "database_table_names",
    "CELERY_RESULT_ENGINE_OPTIONS": "database_engine_options",
    "CELERY_SEND_EVENTS": "worker_send_task_events",
    "CELERY_SEND_TASK_SENT_EVENT": "task_send_sent_event",
    "CELERY_TASK_RESULT_EXPIRES": "result_expires",
}
"""Old names that the prefix rule of ``new_name`` does not give."""

JSON_ONLY = frozenset(
    {"task_serializer", "result_serializer", "accept_content", "result_accept_content"}
)
"""Settings that name serializers: JSON is what sqlqueue stores, so "json" is accepted as
it is, and anything else refused (a pickle would run code of the sender's choosing)."""

JSON_NAMES = frozenset({"json", "application/json"})

DATABASE_URL_SETTINGS = ("broker_url", "result_backend")
"""Celery settings that may hold the queue's database URL."""

NOT_APPLIED_PREFIXES = {
    "broker_": "there is no broker: jobs are rows in the database of the app's URL",
    "result_backend_": "results are kept in the queue's own table, in the same database",
    "beat_": "sqlqueue's scheduler keeps its state in the table sqlqueue_schedules and sleeps "
    "until the next tick; only beat_schedule is read (docs/scheduling.md)",
    "control_": "there is no remote control: a worker's state is in the database",
    "event_": "there are no event messages: a job's state is in the database",
    "security_": "jobs are JSON in your own database; there are no messages to sign",
    "database_": "Celery's SQLAlchemy result backend: results live in the queue's table",
    "redis_": "results live in the queue's database, not a result backend",
    "cache_": "results live in the queue's database, not a result backend",
    "cassandra_": "results live in the queue's database, not a result backend",
    "s3_": "results live in the queue's database, not a result backend",
    "azureblockblob_": "results live in the queue's database, not a result backend",
    "gcs_": "results live in the queue's database, not a result backend",
    "couchbase_": "results live in the queue's database, not a result backend",
    "arangodb_": "results live in the queue's database, not a result backend",
    "mongodb_": "results live in the queue's database, not a result backend",
    "cosmosdbsql_": "results live in the queue's database, not a result backend",
    "elasticsearch_": "results live in the queue's database, not a result backend",
    "worker_": "Celery's worker internals; `sqlqueue worker --help` lists what the worker takes",
    "task_acks_": "a taken job is leased, and runs again after a lost worker's lease runs out "
    "(as acks_late with reject_on_worker_lost)",
    "task_default_": "AMQP exchanges and routing keys: a queue here is a column of the job",
    "task_create_missing_queue": "a queue exists as soon as a job names it",
    "task_publish_retry": "a send is one INSERT, in the caller's transaction when given one",
    "result_": "results are kept in the queue's own table, with what Celery's extended "
    "results hold",
}
"""Why a Celery setting that sqlqueue does not read has no effect, by name prefix (the
longest matching prefix, or an exact entry of ``NOT_APPLIED``, gives the reason)."""

NOT_APPLIED = {
    "broker_url": "it is not a database URL, and there is no broker: give the queue's "
    "database URL (postgresql://..., sqlite:///...) to use one",
    "result_backend": "it is not a database URL: results are kept in the queue's own table",
    "task_reject_on_worker_lost": NOT_APPLIED_PREFIXES["task_acks_"],
    "worker_prefetch_multiplier": "the worker claims what its free threads can start, and "
    "sizes its prefetch by itself",
    "worker_disable_prefetch": "the worker sizes its prefetch by itself",
    "worker_enable_prefetch_count_reduction": "the worker sizes its prefetch by itself",
    "worker_pool": "give `sqlqueue worker --pool thread|process`",
    "worker_max_memory_per_child": "not supported: use worker_max_tasks_per_child",
    "worker_disable_rate_limits": "rate limits hold across all workers, in the database's "
    "claim; one worker cannot step outside them (docs/limits.md)",
    "task_default_rate_limit": "not supported: give rate_limit= to the tasks that need one "
    "(docs/limits.md)",
    "task_annotations": "not supported: set the options on the task",
    "task_queues": "a queue exists as soon as a job names it; give workers --queues",
    "task_queue_max_priority": "priorities are -100..100 here, higher runs first",
    "task_inherit_parent_priority": "not supported: give priority= when sending",
    "task_protocol": "jobs are rows, not messages",
    "task_compression": "jobs are rows, not messages",
    "task_send_sent_event": NOT_APPLIED_PREFIXES["event_"],
    "task_track_started": "always on: a running job is STARTED",
    "task_remote_tracebacks": "always on: a failure's traceback text is stored "
    "(AsyncResult.traceback)",
    "task_store_errors_even_if_ignored": "a failure is always stored",
    "task_store_eager_result": "an eager run is not stored",
    "task_allow_error_cb_on_chord_header": "a chord's link_error is its body's, called once "
    "when a header job's failure fails the body; give header tasks link_error= for theirs",
    "enable_utc": "times are always stored in UTC",
    "event_serializer": NOT_APPLIED_PREFIXES["event_"],
}
"""Exact names with their own reason; see ``NOT_APPLIED_PREFIXES``."""


def new_name(old: str) -> str | None:
    """The lower-case name of Celery's old upper-case setting ``old`` (``CELERY_ALWAYS_EAGER``
    is ``task_always_eager``), or None when ``old`` is not one of Celery's."""
    if old in IRREGULAR_OLD_NAMES:
        return IRREGULAR_OLD_NAMES[old]
    prefix = next((p for p in OLD_PREFIXES if old.startswith(p)), None)
    if prefix is None:
        return None
    rest = old[len(prefix) :].lower()
    if prefix == "CELERYBEAT_":
        candidates = [f"beat_{rest}"]
    elif prefix == "CELERYD_":
        candidates = [rest, f"worker_{rest}"]
    elif prefix == "BROKER_":
        candidates = [f"broker_{rest}"]
    else:
        candidates = [rest, f"task_{rest}", f"worker_{rest}"]
    return next((name for name in candidates if name in CELERY_SETTINGS), None)


def not_applied_reason(name: str) -> str | None:
    """Why the Celery setting ``name`` has no effect here; None for a name that is not
    Celery's."""
    if name in NOT_APPLIED:
        return NOT_APPLIED[name]
    if name not in CELERY_SETTINGS:
        return None
    prefixes = [prefix for prefix in NOT_APPLIED_PREFIXES if name.startswith(prefix)]
    return NOT_APPLIED_PREFIXES[max(prefixes, key=len)] if prefixes else "not supported"


CALLBACKS_ELSEWHERE = (
    "callbacks are taken by apply_async(), send_task() and signatures; here, send a signature "
    "that has them: add.s(2, 2).set(link=other.s()).apply_async(), or .apply() to run inline"
)
"""Where ``link=``/``link_error=`` go when a send that takes no callbacks is given them."""

SEND_OPTIONS_WITHOUT_EFFECT = {
    **dict.fromkeys(
        ["retry", "retry_policy"],
        "there is no broker connection to retry: a send is one INSERT in the database",
    ),
    "serializer": "jobs are always JSON",
    "compression": "jobs are JSON in a row, not compressed messages",
    "add_to_parent": "a result has no parent or children",
}
"""Options of Celery's ``apply_async`` accepted with a warning, and why they change nothing."""

SEND_OPTIONS_REFUSED = {
    **dict.fromkeys(["link", "link_error"], CALLBACKS_ELSEWHERE),
    "headers": "there are no message headers: pass the data as an argument of the task",
    "ignore_result": "set it on the task, @app.task(ignore_result=True), or as "
    "app.conf.task_ignore_result",
    **dict.fromkeys(
        ["time_limit", "soft_time_limit"],
        "set the limits on the task, @app.task(time_limit=..., soft_time_limit=...), or as "
        "app.conf.task_time_limit",
    ),
    **dict.fromkeys(
        ["exchange", "routing_key"],
        "give queue=: there are no exchanges, a job goes to the queue it names",
    ),
    "shadow": "a job is shown under its task's name",
}
"""Options of Celery's ``apply_async`` that sqlqueue does not take, and what to do instead:
refused, since ignoring them would change where or how the job runs."""

_SCHEDULE_FILE = "the scheduler keeps its state in the database table sqlqueue_schedules"
_SCHEDULER = (
    "periodic tasks come from app.conf.beat_schedule and app.add_periodic_task, and their "
    "state is in the table sqlqueue_schedules (docs/scheduling.md)"
)
_MANAGER = "run it under your process manager (systemd, supervisor, a container)"
_NO_PREFETCH = "the worker claims what its free threads can start and sizes its prefetch itself"
_NO_GOSSIP = "workers do not talk to each other: leave it out"

WORKER_FLAGS = {
    **dict.fromkeys(["-s", "--schedule"], _SCHEDULE_FILE),
    **dict.fromkeys(["-S", "--scheduler"], _SCHEDULER),
    **dict.fromkeys(
        ["-E", "--task-events"], "there are no events: a job's state is in the database"
    ),
    **dict.fromkeys(["-n", "--hostname"], "a worker names itself host:pid:random"),
    "--autoscale": "give a fixed --concurrency",
    **dict.fromkeys(["-O", "--prefetch-multiplier"], _NO_PREFETCH),
    **dict.fromkeys(["--without-gossip", "--without-mingle", "--without-heartbeat"], _NO_GOSSIP),
    **dict.fromkeys(["-D", "--detach", "--pidfile", "-f", "--logfile"], _MANAGER),
    **dict.fromkeys(
        ["--time-limit", "--soft-time-limit"],
        "set app.conf.task_time_limit and task_soft_time_limit, or time_limit= on the task",
    ),
    "--max-memory-per-child": "use --max-tasks-per-child",
    "-P": "use --pool thread or --pool process",
    **dict.fromkeys(["-X", "--exclude-queues"], "name the queues to take with --queues"),
    "--purge": "run `sqlqueue purge --queue NAME` before the worker",
}
"""Options of ``celery worker`` that ``sqlqueue worker`` does not take, and what to do instead."""

BEAT_FLAGS = {
    **dict.fromkeys(["-s", "--schedule"], _SCHEDULE_FILE),
    **dict.fromkeys(["-S", "--scheduler"], _SCHEDULER),
    "--max-interval": "a scheduler sleeps until the next tick of its periodic tasks",
    **dict.fromkeys(["-D", "--detach", "--pidfile", "-f", "--logfile"], _MANAGER),
}
"""Options of ``celery beat`` that ``sqlqueue beat`` does not take, and what to do instead."""

CELERY_POOLS = {
    "prefork": "process",
    "threads": "thread",
    "solo": "thread --concurrency 1",
    "gevent": "thread (async def tasks run on the worker's event loop)",
    "eventlet": "thread (async def tasks run on the worker's event loop)",
}
"""Celery's ``--pool`` names, and the ``sqlqueue worker --pool`` to give instead."""
