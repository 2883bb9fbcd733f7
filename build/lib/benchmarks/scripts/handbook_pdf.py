"""Write the example handbook's PDF (``benchmarks/data/handbook/it/vpn-setup.pdf``) with fpdf2: a real PDF with
an outline (bookmarks) and bold headings, so ``dataset=files`` can be shown reading PDF structure.

    python -m benchmarks.scripts.handbook_pdf [OUT.pdf]

``write_pdf`` is also what the tests use to build their PDF fixture.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

VPN_GUIDE = ("VPN setup guide", [
    ("Install the client", [
        "Install the Tunnelgate client from the software centre. Administrator rights are not needed.",
        "Restart the laptop after the installation so that the network driver loads.",
    ]),
    ("Connect", [
        "Open Tunnelgate and choose the gateway nearest to you: gw-eu.example.net in Europe, gw-us.example.net "
        "in the Americas.",
        "Sign in with your employee number and approve the push notification on your phone.",
    ]),
    ("Troubleshooting", [
        "Error VPN-719 means the client certificate has expired. Open the software centre and run "
        "'Renew VPN certificate', then reconnect.",
        "If the connection drops every few minutes, switch the protocol from UDP to TCP in the settings.",
    ]),
])


def write_pdf(path: Path, title: str, sections: Sequence[tuple[str, Sequence[str]]]) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(title)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.start_section(title, level=0)
    pdf.cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
    for heading, paragraphs in sections:
        pdf.set_font("Helvetica", "B", 13)
        pdf.start_section(heading, level=1)
        pdf.cell(0, 9, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        for para in paragraphs:
            pdf.multi_cell(0, 6, para, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "data" / "handbook" / "it" / "vpn-setup.pdf"
    write_pdf(out, *VPN_GUIDE)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
