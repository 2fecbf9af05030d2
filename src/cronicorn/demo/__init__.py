"""`cronicorn demo`: a built-in target service and the demo jobs that run against it."""

from cronicorn.demo.jobs import demo_job_spec, demo_job_specs, health_job_spec, split_spec
from cronicorn.demo.target import DemoTarget, DemoTargetConfig, start_target

__all__ = [
    "DemoTarget",
    "DemoTargetConfig",
    "demo_job_spec",
    "demo_job_specs",
    "health_job_spec",
    "split_spec",
    "start_target",
]
