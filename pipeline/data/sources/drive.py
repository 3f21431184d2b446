"""Google Drive files, fetched with gdown (which knows Drive's confirmation pages)."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.data.sources.lock import DownloadError, SourceRefused

log = logging.getLogger(__name__)

# Where a Drive file is fetched from (tests point it at a local server).
DRIVE_URL = "https://drive.google.com/uc?id={id}"
KINDS = ("path", "url", "gdrive")
# gdown's network settings: seconds between bytes, and further attempts.
DRIVE_TIMEOUT = 60.0
DRIVE_RETRIES = 3


def gdown_download(url: str, staged: Path, hint: str) -> None:
    """Download ``url`` to ``staged`` with gdown; its failures become ``DownloadError``s."""
    try:
        import gdown
        import requests
        from gdown.exceptions import DownloadError as GdownError
        from gdown.exceptions import FileURLRetrievalError
    except ImportError as exc:
        raise DownloadError(
            f"{url}: the gdown package is needed for Google Drive files (pip install gdown). {hint}"
        ) from exc
    log.info("downloading %s with gdown %s", url, gdown.__version__)
    try:
        gdown.download(
            url=url,
            output=str(staged),
            quiet=True,
            resume=True,
            timeout=DRIVE_TIMEOUT,
            retries=DRIVE_RETRIES,
        )
    except FileURLRetrievalError as exc:
        reason = " ".join(str(exc).split())
        raise SourceRefused(
            f"{url}: Google Drive did not hand out the file (gdown: {reason}). Drive does this "
            f"past a file's daily download quota, or when the file's sharing changed. {hint}"
        ) from exc
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        why = {
            401: "it wants a sign-in",
            403: "it refuses (a quota, or sharing restricted)",
            429: "too many requests (a rate limit or download quota)",
        }
        if status in why:
            message = f"{url}: Drive answered HTTP {status}: {why[status]}. {hint}"
            raise SourceRefused(message) from exc
        raise DownloadError(f"{url}: Drive answered HTTP {status}. {hint}") from exc
    except (GdownError, requests.RequestException, OSError) as exc:
        raise DownloadError(
            f"{url}: download failed ({exc}); a partial file beside {staged.parent} is kept "
            f"and the next run resumes it. {hint}"
        ) from exc
