"""Faces for agent frameworks: the LangGraph store and the MCP server (optional extras)."""
