"""Who acts: principals, their scopes and the API tokens that stand for them."""
