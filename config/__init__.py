"""Settings from the environment (prefix TOOLRUNNER_) and the Celery configuration built from them."""

from config.celery import celery_config
from config.settings import Settings, docker_tls_files, load_settings

__all__ = ["Settings", "celery_config", "docker_tls_files", "load_settings"]
