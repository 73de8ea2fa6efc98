"""The hub's tables (SQLAlchemy Core), the unit of work and the migrations."""
