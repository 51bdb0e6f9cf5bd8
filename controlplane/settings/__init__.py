from .base import *  # noqa: F401,F403
from .api import *  # noqa: F401,F403
from .tasks import *  # noqa: F401,F403
from .observability import *  # noqa: F401,F403
from .auth import *  # noqa: F401,F403
from .sso import *  # noqa: F401,F403
from .http_security import *  # noqa: F401,F403
from .audit import *  # noqa: F401,F403
