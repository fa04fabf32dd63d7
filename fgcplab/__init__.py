"""fgcp-lab's umbrella command line (``fgcp-lab``): the one package that sees all the others.

It dispatches to fgcp (diag client, check-config), topologies (``topo``) and lab
(``bench``, ``run``, ``compare``, ``soak``); nothing imports it.
"""
