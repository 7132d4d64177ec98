"""Drop-ins for agent SDKs: each turns what the SDK reports about a run into driftwatch outcomes.

``driftwatch.integrations.openai_agents``: a trace processor for the OpenAI Agents SDK.
"""
