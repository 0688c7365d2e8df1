"""Local fakes of the vendor APIs, served over HTTP so the real SDKs can talk to them."""
