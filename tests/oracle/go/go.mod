module consentgate/oracle

go 1.19
