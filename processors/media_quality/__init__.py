"""The ``media_quality`` processor: RTCP reports (rtpengine's JSON on ``callscope.rtcp``) and
VQ-RTCPXR PUBLISH bodies (``callscope.sip``) into ``media_quality`` rows with loss, jitter,
RTT, R-factor and MOS. The figures and the E-model are in :mod:`.mos` (pure); docs/mos.md
explains them; :mod:`.app` is the bus/store shell.
"""
