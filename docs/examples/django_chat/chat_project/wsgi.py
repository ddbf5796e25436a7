"""For gunicorn: ``gunicorn -k gthread --threads 8 --chdir docs/examples/django_chat chat_project.wsgi``."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_project.settings")
application = get_wsgi_application()
