"""On-chain settlement: the escrow contracts' artifacts and, later, the chain client.

``contracts/`` holds the Solidity sources; ``contracts/build.mjs`` compiles them with solc-js
into ``artifacts/`` here, which is committed and checked for staleness by the test suite. This
package knows web3 and the protocol models, never FastAPI or SQLAlchemy.
"""
