"""Unit tests of the activemq source: event shape, settings, settlement rules."""
