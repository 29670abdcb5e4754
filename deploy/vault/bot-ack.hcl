# Vault / OpenBao policy for ONE bot that acknowledges its key (ack mode "vault").
#
#   sed 's/BOTNAME/bot1/g' deploy/vault/bot-ack.hcl | bao policy write bot1 -
#
# The bot may read its own consumer record and write only its own ack record; nothing else.
# Assumes the defaults of rotator.toml: KV v2 mount "secret", prefix "rotator".

path "secret/data/rotator/keys/BOTNAME" {
  capabilities = ["read"]
}

path "secret/data/rotator/ack/BOTNAME" {
  capabilities = ["create", "update"]
}
