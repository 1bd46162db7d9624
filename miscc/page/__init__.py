"""The interactive page: the model side (``model``), the standard-library HTTP server and its JSON API
(``server``) and the static HTML/JS/CSS (``static/``)."""
