-- POST /items with a body that fails validation (empty name, negative price): 422.
-- Keep the body in step with INVALID_ITEM in bench/apps/payload.py.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"","price":-1}'
