"""catalogue: the archivists' decisions (metadata edits, activities, people, re-tag requests)."""
