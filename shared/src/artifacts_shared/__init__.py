"""The library the controller, the api and the janitor share.

Kept thin on purpose: settings pieces, the PHFS object layout, the artifact
metadata formats, and small S3/Redis helpers. Anything only one service needs
lives in that service.
"""
