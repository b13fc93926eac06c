"""The operator dashboard's page, script and stylesheet (served by ``api/dashboard.py``)."""
