"""OCR with the real Tesseract Vietnamese model on generated banners: the words
come back, and the activity type follows from them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from deploy.local import installers
from services.tagger.ocr import OcrSettings, extract_keyframes, ocr_image
from shared.text import fold
from shared.vocabulary import classify

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def tesseract() -> None:
    """Installed by the project's launcher, like every other tool; never skipped."""
    installers.tesseract_vietnamese()


def banner(path: Path, lines: list[str], size: tuple[int, int] = (1280, 720)) -> Path:
    img = Image.new("RGB", size, (150, 20, 25))
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(FONT), 46)
    for i, line in enumerate(lines):
        draw.text((60, 200 + 80 * i), line, font=font, fill=(255, 225, 0))
    img.save(path)
    return path


def test_vietnamese_banner_text_on_a_photo_comes_back_and_names_the_activity(tmp_path: Path) -> None:
    photo = banner(tmp_path / "photo.jpg", ["KỲ HỌP THỨ BẢY HĐND TỈNH KHÓA XI", "NHIỆM KỲ 2021 - 2026"])
    text = ocr_image(photo, OcrSettings())
    assert "KỲ HỌP THỨ BẢY HĐND TỈNH KHÓA XI" in text
    assert "nhiem ky 2021 - 2026" in fold(text)
    assert classify(text).activity_type == "ky-hop"


def test_the_text_of_a_clips_keyframes_is_read(tmp_path: Path) -> None:
    first = banner(tmp_path / "f1.png", ["HỘI NGHỊ TIẾP XÚC CỬ TRI"])
    second = banner(tmp_path / "f2.png", ["DIỄN ĐÀN TIẾNG NÓI CỬ TRI"])
    second_img = Image.open(second)
    Image.eval(second_img, lambda v: 255 - v).save(second)  # a visibly different scene
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-loop",
            "1",
            "-t",
            "1",
            "-i",
            str(first),
            "-loop",
            "1",
            "-t",
            "1",
            "-i",
            str(second),
            "-filter_complex",
            "[0][1]concat=n=2:v=1:a=0,format=yuv420p",
            "-r",
            "5",
            "-c:v",
            "libx264",
            str(clip),
        ],
        check=True,
        timeout=120,
    )
    frames = extract_keyframes(clip, tmp_path, "mov,mp4,m4a,3gp,3g2,mj2", OcrSettings())
    assert 2 <= len(frames) <= OcrSettings().max_keyframes
    texts = [ocr_image(f, OcrSettings()) for f in frames]
    folded = fold("\n".join(texts))
    assert "tiep xuc cu tri" in folded and "dien dan tieng noi cu tri" in folded
