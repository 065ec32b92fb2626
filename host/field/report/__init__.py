"""The door operator's report: figures (data), on-device evaluation (eval), plots and the HTML page."""
