"""The Celery side: launch and stop tasks, and the Chromium pool each worker owns."""
