# Least-privilege Vault / OpenBao policy for the rotator daemon.
#
#   bao policy write rotator deploy/vault/rotator.hcl        (or: vault policy write ...)
#
# Assumes the defaults of rotator.toml: KV v2 mount "secret", prefix "rotator". If you change
# [vault] mount or prefix, or give a key its own vault_path outside secret/rotator/, edit the paths
# below to match (tests/deploy/test_vault_policy.py checks this file against a real OpenBao).
#
# Layout under secret/rotator/:
#   keys/<name>                what consumers (your bots) read: api_key, api_secret, ...
#   state/<name>               the rotation state record of one key (written with check-and-set)
#   accounts/<account>/master  the master key: written by a HUMAN, only read by the daemon
#   accounts/<account>/state   per-account state (password change, orphans)
#   reminders/<name>           which reminders of a [[tracked]] key were sent (check-and-set)
#   tracked/<name>             a [[tracked]] key's own credentials (kind = "key"), read only

# ---- Everything the daemon owns: consumer paths and state records (KV v2 API paths).
# create+update = writes (always with cas), read = current and previous versions.
path "secret/data/rotator/*" {
  capabilities = ["create", "read", "update"]
}

# Metadata: version list, cas_required, custom_metadata. No "delete": the daemon never
# removes a whole secret with all its versions.
path "secret/metadata/rotator/*" {
  capabilities = ["create", "read", "update", "list"]
}

# Destroy the secret material of a version whose key has been revoked on Bybit.
path "secret/destroy/rotator/*" {
  capabilities = ["update"]
}

# ---- Master keys: read-only. These more specific paths win over the globs above (Vault
# picks the path whose first wildcard comes later), so the daemon can read a master key but
# never overwrite, destroy or re-configure it.
path "secret/data/rotator/accounts/+/master" {
  capabilities = ["read"]
}

path "secret/metadata/rotator/accounts/+/master" {
  capabilities = ["read"]
}

path "secret/destroy/rotator/accounts/+/master" {
  capabilities = ["deny"]
}

# ---- Its own token: keep it alive, look at it (`rotator check`).
path "auth/token/renew-self" {
  capabilities = ["update"]
}

path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# `rotator check` asks Vault which of the paths above it may use.
path "sys/capabilities-self" {
  capabilities = ["update"]
}
