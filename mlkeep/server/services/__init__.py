"""The library calls the REST routes wrap, one module per domain (as `routes/`).

Each function takes the store and the request's `Principal` first, checks
what that principal may do, and makes one library call, so every route is
one line. `access` holds the rules shared by all of them (who may see which
run, dataset or entity); `files` the temporary files that uploads and
downloads stream through.
"""
