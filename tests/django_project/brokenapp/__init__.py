"""An app whose vars.py cannot be imported (as django-expvar-psutil without psutil)."""
