"""Policies: declarative rules that `fttool check` applies to recipes before a run and to report.json after it.

A policy file (schemas/policy.schema.json) lists rules, each naming one check kind from a registry of
plain functions, and waivers that excuse named targets from named rules until a date. Nothing here
imports the training, PII or fairness libraries, so a check runs in the time it takes to read YAML.
"""
