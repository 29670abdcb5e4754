"""What both worlds of the contract suite hold besides the `simulator` fixture's master: a second
master account with one sub, to prove a master acts on its own subs only."""

OTHER_MASTER_UID = 3000
OTHER_MASTER_KEY = "OTHERMASTER00000001"
OTHER_MASTER_SECRET = "OTHERMASTERSECRET000000000000000001"
OTHER_SUB_UID = 4001
