"""A FastAPI service shaped as teams build them: `uvicorn examples.shop.app:app`."""
