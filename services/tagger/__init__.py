"""tagger: proposes activity type, term, people, organisations and on-screen text for assets."""
