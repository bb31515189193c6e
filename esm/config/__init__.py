"""Configuration: YAML loading with `${VAR}` substitution (`loading`), the strict
dataclass schema that reports every problem at once (`schema`), the per-mapping rules
(`mapping`) and the parsed, frozen types (`types`). Imports only esm's leaves and the
connector registry; nothing here reads configuration after startup (STYLE rule 4).
"""
