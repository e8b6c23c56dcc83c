-- pgquant install script, built by the Makefile from control/parts/*.sql in name order

\echo Use "CREATE EXTENSION pgquant" to load this file. \quit

