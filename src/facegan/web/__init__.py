"""The web page of ``facegan serve`` (``app.create_app``) and its HTML (``page.html``)."""
