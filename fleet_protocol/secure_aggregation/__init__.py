"""Pairwise-masked secure aggregation in the style of Bonawitz et al. (CCS 2017), pure logic.

The aggregator learns only the sum of the devices' fixed-point vectors. Phases, each a pure
method returning the message to send (the service routes them; see docs/security.md):

1. advertise: each device publishes two X25519 public keys (share encryption, masking).
2. share keys: each device Shamir-shares its masking private key and a fresh self-mask seed
   among all advertised devices, each share encrypted to its holder (AES-GCM, via the server).
3. masked input: y_u = x_u + PRG(b_u) + sum_{v>u} PRG(s_uv) - sum_{v<u} PRG(s_uv)  (mod 2^32).
4. unmask: survivors reveal shares of b_v for devices whose input arrived and of s_v for
   devices that dropped; the server rebuilds those masks and removes them from the sum.

Modules: `fixed_point` (floats <-> integers mod 2^32), `masking` (key agreement, PRG),
`shamir` (secret sharing), `messages`, `client`, `server`.
"""
