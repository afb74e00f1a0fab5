"""The BentoML scoring and decision service, its policy, API keys, audit log and regulator views."""
