from celery.signals import task_postrun, task_prerun

from apps.core.context import RequestContext, new_request_id, reset_context, set_context

from .services import REQUEST_ID_HEADER

_tokens: dict[str, object] = {}


@task_prerun.connect
def bind_request_id(task_id=None, task=None, **_):
    """Work done by a task is audited against the request that caused it."""
    request_id = getattr(task.request, REQUEST_ID_HEADER, None) or new_request_id()
    _tokens[task_id] = set_context(RequestContext(request_id=request_id))


@task_postrun.connect
def unbind_request_id(task_id=None, **_):
    token = _tokens.pop(task_id, None)
    if token is not None:
        reset_context(token)
