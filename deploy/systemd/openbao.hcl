# OpenBao server config for one VPS: a single node, Raft storage, listening on loopback only.
# Used by deploy/systemd/openbao.service; walk-through in docs/install-vps.md.
#
# Install as /etc/openbao/openbao.hcl. Paths below match the unit's StateDirectory=openbao and
# LoadCredential=unseal-key:... lines.

ui            = false
# Raft memory-maps its database; locking it in RAM is not supported with Raft, and leaving mlock
# on would need CAP_IPC_LOCK. Keep swap off or encrypted on the VPS instead.
disable_mlock = true

storage "raft" {
  path    = "/var/lib/openbao"
  node_id = "vps-1"
}

# Plain HTTP is acceptable ONLY because the listener is bound to 127.0.0.1: nothing off this
# machine can reach it. To serve other hosts, add tls_cert_file/tls_key_file and drop
# tls_disable; never bind 0.0.0.0 without TLS.
listener "tcp" {
  address         = "127.0.0.1:8200"
  cluster_address = "127.0.0.1:8201"
  tls_disable     = true
}

api_addr     = "http://127.0.0.1:8200"
cluster_addr = "http://127.0.0.1:8201"

# Auto-unseal with a static 32-byte key, handed to the service as a systemd credential.
# Without this block OpenBao uses Shamir keys, and after EVERY reboot somebody must run
# `bao operator unseal` before the rotator can work (its alerts will tell you).
# Trade-off: the key lives on the same machine as the data, so it protects against a copied
# /var/lib/openbao, not against root on this VPS. Create it once with
#   install -m 0400 /dev/null /etc/openbao/unseal.key && openssl rand -out /etc/openbao/unseal.key 32
# and keep a copy offline: without it the data cannot be decrypted.
seal "static" {
  current_key_id = "vps-1-2025"
  current_key    = "file:///run/credentials/openbao.service/unseal-key"
}
