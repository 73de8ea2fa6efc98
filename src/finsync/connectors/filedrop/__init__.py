"""File-drop ERP connector: postings written as JSON lines for an ERP's file import."""
