"""The MCP server: Cronicorn's user operations as tools for AI assistants.

`cronicorn mcp` serves them over stdio against the REST API (`cronicorn.mcp.stdio`); the API
server serves the same tools over streamable HTTP at `/mcp` (`cronicorn.mcp.http`). Tools are
generated from the REST routes (`cronicorn.mcp.tools`). Nothing is imported here: the
submodules load the `mcp` SDK only when used.
"""
