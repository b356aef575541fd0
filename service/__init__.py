"""The service: the aiohttp app and its routes, the HTTP helpers, the admin and agent APIs, and the command lines."""
