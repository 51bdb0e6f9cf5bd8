"""Static file names with a content hash, so browsers cache them for good (WhiteNoise sends
`Cache-Control: max-age=315360000, public, immutable` for a hashed name) and a new release changes the URL.

`make run` collects once (var/staticfiles: hashed copies plus .gz and .br variants). Before anything is
collected (most tests, `manage.py runserver`) there is no manifest, so pages link the plain names, which
WhiteNoise serves from the finders with a short max-age.
"""
from whitenoise.storage import CompressedManifestStaticFilesStorage


class HashedStaticFilesStorage(CompressedManifestStaticFilesStorage):
    def stored_name(self, name):
        if not self.hashed_files:
            return name
        return super().stored_name(name)
