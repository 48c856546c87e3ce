"""Built-in campaign types: each module registers one through ``communitykit_campaign_types``."""
