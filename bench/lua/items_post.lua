-- POST /items with a valid body: every server validates it and echoes it (201).
-- Keep the body in step with ITEM in bench/apps/payload.py.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"Widget","price":9.5,"tags":["tools","blue"]}'
