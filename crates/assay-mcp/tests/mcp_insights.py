"""Call the `insights` tool of `assay mcp` over stdio with the official MCP client SDK.

    python mcp_insights.py ASSAY_BINARY DATA_DIR BY

Prints the tool's text answer; exits non-zero when the tool is missing or answers an error.
"""

import asyncio
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ASSAY, DATA, BY = sys.argv[1], sys.argv[2], sys.argv[3]


async def main():
    params = StdioServerParameters(command=ASSAY, args=["mcp", "--data-dir", DATA])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert "insights" in tools, sorted(tools)
            assert tools["insights"].annotations.read_only_hint, tools["insights"].annotations
            result = await session.call_tool("insights", {"by": BY, "since": "30d"})
            text = "".join(c.text for c in result.content if c.type == "text")
            assert not result.is_error, text
            print(text, end="")
            bad = await session.call_tool("insights", {"by": "colour"})
            assert bad.is_error, bad


asyncio.run(main())
