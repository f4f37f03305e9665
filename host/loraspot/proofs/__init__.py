"""Coverage proofs: receipts a hotspot signs with its identity key, the Merkle trees and hash chain
that bind them, and the ledger that checks and keeps them (docs/proofs.md)."""
