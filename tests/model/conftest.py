from tests.api.conftest import make_client  # noqa: F401 - shared fixture
