"""One router per domain; each route is one library call."""
