"""The merchant's own credit report: the ``/merchant/*`` JSON API and the page that reads it (``/merchant/``)."""
